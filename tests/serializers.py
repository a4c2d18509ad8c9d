"""Serializers of the tests' own, registered in ``TestsConfig.ready`` (tests/apps.py),
so that the test process and every worker it starts have them."""

import ast
import json
import zlib


def zjson_dumps(value):
    return zlib.compress(json.dumps(value).encode())


def zjson_loads(data):
    return json.loads(zlib.decompress(data))


def register_all():
    from django_tasks.serialization import register

    # Binary: zlib-compressed JSON, stored base64-encoded.
    register("zjson", zjson_dumps, zjson_loads, content_type="application/x-zjson",
             content_encoding="binary")
    # Text: Python literals (tuples and sets come back as such); repr() of
    # anything else writes what literal_eval then refuses.
    register("literal", repr, ast.literal_eval, content_type="text/x-python-literal")
