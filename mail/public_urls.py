"""Pages outside the API (the sender challenge confirmation page)."""

from __future__ import annotations

from django.urls import path

from mail.views import challenge_page

urlpatterns = [
    path("challenge/<str:token>", challenge_page, name="challenge"),
]
