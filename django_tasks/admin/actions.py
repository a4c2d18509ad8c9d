"""The confirmation page every monitor action goes through.

As with Django's own *delete selected*: the action's first POST (from the
changelist) shows what it will do; the "Yes, I'm sure" POST (``post=yes``)
comes back to the same action, which then acts and reports with
``message_user``.
"""

from django.contrib.admin import helpers
from django.template.response import TemplateResponse

#: Rows listed by name on a confirmation page; the rest are counted.
LISTED = 50


def confirmed(request):
    return request.POST.get("post") == "yes"


def confirmation_page(modeladmin, request, *, title, question, items=(), notes=(),
                      queryset=None, action=None, total=None):
    """Render the intermediate page.

    ``queryset`` and ``action`` for a changelist action (its selection is
    posted back); neither for a page of its own (the purge button), whose form
    posts back to its own URL.
    """
    items = list(items)
    # Posted back as they came: the ticked ids and, for "select all N",
    # select_across (Django then takes the whole filtered list again). No
    # "index" field, so Django routes the POST to the action, not the form.
    select_across = request.POST.get("select_across") == "1"
    selected = [] if queryset is None else request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    total = len(items) if total is None else total
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "items": items[:LISTED],
        "more": max(0, total - LISTED),
        "notes": list(notes),
        "action": action,
        "selected": selected,
        "select_across": select_across,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "django_tasks/admin/confirm_action.html", context)
