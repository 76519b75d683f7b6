"""Enhanced status codes (RFC 3463) on the listener's replies, as ENHANCEDSTATUSCODES
(RFC 2034) promises once EHLO advertises it.

The listener's own replies carry their code (``250 2.0.0 OK: queued``). aiosmtpd's built-in
replies mostly do not (``250 OK``, ``503 Error: need RCPT command``): ``reply_enhanced``
gives each of them the code that fits its reply code, in the session's ``push`` (the one
place every reply goes through), so an aiosmtpd upgrade that adds a reply cannot send one
without a code. RFC 2034 section 3 leaves out the greeting and the replies to HELO and
EHLO (their lines are the server's name and keywords, which clients parse), and 3xx
replies (354, the 334 challenges of AUTH) never carry one.
"""

from __future__ import annotations

import re

# A reply that already has one: "250 2.0.0 ...", "550-5.1.1 ...", or the code alone.
_ENHANCED = re.compile(r"[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_REPLY = re.compile(r"([245]\d\d)([ -]?)(.*)", re.DOTALL)

# The enhanced code for each reply code aiosmtpd sends without one (RFC 3463 section 3);
# any other reply code gets the class's "other" code, X.0.0.
BY_REPLY_CODE = {
    "220": "2.0.0",  # Ready to start TLS
    "221": "2.0.0",  # Bye
    "235": "2.7.0",  # authentication succeeded
    "250": "2.0.0",
    "252": "2.0.0",  # cannot VRFY, but will accept
    "421": "4.3.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",  # TLS not available
    "500": "5.5.2",  # syntax error, command unrecognised, line too long
    "501": "5.5.4",  # invalid arguments
    "502": "5.5.1",  # not implemented
    "503": "5.5.1",  # bad sequence of commands
    "504": "5.5.4",  # unrecognised AUTH mechanism
    "530": "5.7.0",  # STARTTLS or AUTH first
    "535": "5.7.8",  # credentials invalid
    "538": "5.7.11",  # encryption required
    "552": "5.3.4",  # message too big
    "553": "5.1.3",  # malformed address
    "554": "5.7.0",  # refused for lack of security
    "555": "5.5.4",  # MAIL/RCPT parameters not recognised
}


def reply_enhanced(reply: str) -> str:
    """``reply`` (one line, a 2xx, 4xx or 5xx) with an enhanced status code after its reply
    code, unless it already has one; anything else unchanged."""
    if _ENHANCED.match(reply):
        return reply
    match = _REPLY.fullmatch(reply)
    if match is None:
        return reply
    code, separator, text = match.groups()
    enhanced = BY_REPLY_CODE.get(code, f"{code[0]}.0.0")
    return f"{code}{separator or ' '}{enhanced} {text}".rstrip()
