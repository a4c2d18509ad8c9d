// graphile-worker's side of bench/run.py: the same no-op jobs, driven the same
// way as the other systems' driver.py (JSON on stdout, a ready file for the
// worker). Run by run.py with NODE_PATH pointing at bench/.node/node_modules.
"use strict";

const fs = require("fs");
const { Logger, run, makeWorkerUtils, runMigrations } = require("graphile-worker");

const connectionString = process.env.BENCH_DATABASE_URL;

// Errors only: its default logger writes a line per job, which would be most
// of what the worker does in a no-op drain.
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});

const tasks = {
  noop: async () => {},
  sleep10: () => new Promise((resolve) => setTimeout(resolve, 10)),
};

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

async function migrate() {
  await runMigrations({ connectionString, logger });
  console.log(JSON.stringify({ ok: true }));
}

// One addJob() per job, awaited in turn: a web process's one-by-one enqueue.
async function enqueue(n, task) {
  const utils = await makeWorkerUtils({ connectionString, logger });
  try {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await utils.addJob(task, {});
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ n, seconds }));
  } finally {
    await utils.release();
  }
}

// addJobs() in batches: graphile-worker's bulk path.
async function enqueueBulk(n, task) {
  const utils = await makeWorkerUtils({ connectionString, logger });
  try {
    const t0 = performance.now();
    const batch = 5000;
    for (let done = 0; done < n; done += batch) {
      const specs = [];
      for (let i = done; i < Math.min(n, done + batch); i++) {
        specs.push({ identifier: task, payload: {} });
      }
      await utils.addJobs(specs);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ n, seconds }));
  } finally {
    await utils.release();
  }
}

// The worker: runs until SIGTERM. Writes the ready file when it listens, and
// the wall-clock time of the expected-th completion to BENCH_DONE_FILE
// (graphile-worker keeps no record of finished jobs to read it from).
async function work() {
  const concurrency = Number(option("concurrency", 1));
  const localQueue = Number(option("local-queue", 0));
  const expected = Number(process.env.BENCH_EXPECTED || 0);
  let completed = 0;
  const worker = localQueue > 0
    ? { localQueue: { size: localQueue }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
    : {};
  const runner = await run({
    connectionString,
    concurrency,
    noHandleSignals: true,
    logger,
    crontab: "",
    taskList: tasks,
    preset: { worker },
  });
  runner.events.on("job:complete", () => {
    completed += 1;
    if (completed === expected && process.env.BENCH_DONE_FILE) {
      fs.writeFileSync(process.env.BENCH_DONE_FILE, String(Date.now() / 1000));
    }
  });
  fs.writeFileSync(process.env.BENCH_READY_FILE, String(Date.now() / 1000));
  const stop = () => runner.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await runner.promise;
}

const commands = {
  migrate,
  enqueue: () => enqueue(Number(option("n", 1000)), option("task", "noop")),
  bulk: () => enqueueBulk(Number(option("n", 1000)), option("task", "noop")),
  work,
};
commands[process.argv[2]]().catch((error) => {
  console.error(error);
  process.exit(1);
});
