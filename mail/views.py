"""The sender challenge confirmation page: GET shows a button, POST confirms.

GET never changes state, so link scanners and mail previews that fetch the URL cannot
confirm on the sender's behalf.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from mail.trust import ChallengeRefused, challenge_complete, challenge_lookup


@require_http_methods(["GET", "POST"])
def challenge_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method == "POST":
            sender = challenge_complete(token=token)
            return render(request, "directory/challenge_done.html", {"sender": sender, "agent": sender.agent})
        challenge = challenge_lookup(token=token)
    except ChallengeRefused as refused:
        return render(request, "directory/challenge_refused.html", {"message": refused.message}, status=refused.status)
    return render(request, "directory/challenge_confirm.html", {"challenge": challenge, "agent": challenge.agent})
