"""One-time codes (mail.content.codes): found next to the words that name them, in several
languages; not dates, times, prices, phone numbers, order numbers or years."""

from __future__ import annotations

import time

import pytest

from mail.content.codes import codes_find


@pytest.mark.parametrize(
    ("subject", "text", "code"),
    [
        ("", "Your verification code is 482913.", "482913"),
        ("482913 is your Acme code", "", "482913"),
        ("", "Your code:\n\n   739201\n\nIt expires in 10 minutes.", "739201"),
        ("", "Use OTP 5521 to log in.", "5521"),
        ("", "Your PIN: 0042", "0042"),
        ("", "Enter passcode 123 456 to continue.", "123456"),
        ("", "Your one-time password is 88127364", "88127364"),
        ("", "Ihr Bestätigungscode lautet: 482913", "482913"),
        ("", "Ihr Sicherheitscode: 904417", "904417"),
        ("", "Tu código de verificación es 739201.", "739201"),
        ("", "Votre code de vérification : 551203", "551203"),
        ("", "Il tuo codice di verifica è 661034", "661034"),
        ("", "Uw verificatiecode is 120934", "120934"),
        ("", "Twój kod weryfikacyjny: 340912", "340912"),
        ("", "Ваш код подтверждения: 771290", "771290"),
        ("", "認証コード: 558812", "558812"),
        ("", "您的验证码是 663201", "663201"),
        ("", "Your sign-in code: K7PX-9QZ", "K7PX-9QZ"),
        ("", "Security code: AB12CD", "AB12CD"),
    ],
)
def test_it_finds_the_code_next_to_a_word_that_names_it(subject: str, text: str, code: str) -> None:
    assert codes_find(subject=subject, text=text) == [code]


@pytest.mark.parametrize(
    "text",
    [
        "Your code expires on 2026-03-09.",
        "Your verification code was requested on 03.03.2026 at 10:45.",
        "Use code before March 12, 2026 to save.",
        "Your code is valid until 12/03/2026.",
        "Verification costs $1999.00 per year.",
        "Your code unlocks 1299 EUR of credit.",
        "Promo code: 20% off",
        "Questions about your code? Call +1 (415) 555-0132.",
        "Verification hotline 0800 123 4567.",
        "Your order 48392017 has shipped; no code needed.",
        "Order #4839201 verification complete.",
        "Invoice number 2026-00917: verification done.",
        "The verification will happen in 2026.",
        "Enter your code in the app.",
        "Your code: hello",
        "© 2026 Store GmbH, Musterstraße 12, 10115 Berlin. Verification required.",
        "SWIFT/BIC Code: CAIXESBBXXX\nNational Bank Code: 21003467",
        "Fix error code 5.1.10 <http://go.microsoft.com/fwlink/?LinkId=532972>",
        "May 29 ubiquity[4446]: failed with code 2",
        "Use promo code SAVE20 at checkout.",
        "Enter your zip code 94107 to see local stores.",
        "Verify your address jane1234@example.com today.",
    ],
)
def test_it_does_not_take_dates_prices_phones_orders_or_years_for_codes(text: str) -> None:
    assert codes_find(subject="", text=text) == []


def test_a_number_without_a_code_word_is_not_a_code() -> None:
    assert codes_find(subject="Meeting", text="See you in room 4821 at 10:00. Bring 482913 copies.") == []


def test_it_returns_each_code_once_subject_first() -> None:
    assert codes_find(subject="Your code 111222", text="Code: 111222. Backup code: 333444") == ["111222", "333444"]


def test_a_long_sentence_full_of_numbers_is_scanned_quickly() -> None:
    text = "Your code " + " ".join(str(100_000 + i) for i in range(3000))
    start = time.process_time()  # CPU time: the machine's load must not fail it

    assert codes_find(subject="", text=text) == []
    assert time.process_time() - start < 0.3
