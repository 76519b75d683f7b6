"""Adaptations of third-party libraries: every place where this project relies on a
library's internals (a private method overridden, a private attribute read, an
undocumented behaviour counted on) lives here, one module per library, and nowhere else.

Each module says which versions of its library it was checked against
(``CHECKED_VERSIONS``) and what to re-check on an upgrade; tests/compat/ fails loudly when
the installed version is not one of them, and the differential tests named in each module
(our behaviour against the stock library's, over real sockets or real mail) run on every
upgrade: ``make compat-check`` (which also runs mail.mimetree's comparison with the
stdlib's parser: it builds the stdlib's tree through public API only, so it lives in mail/).

What belongs here: subclasses and wrappers of library classes that touch their internals.
What does not: our own logic (it goes in the app that owns it, which then uses the
adapted class from here). ``compat`` may be imported by any app and imports none of them.
"""
