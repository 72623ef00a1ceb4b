"""`make run`'s operator account: created once, from the environment or with a generated
password that only the command's output ever shows."""

import pytest
from django.core.management import call_command

from algotrader.users.models import User
from algotrader.users.operators import DEFAULT_OPERATOR_EMAIL, operator_ensure

pytestmark = pytest.mark.django_db


def test_a_fresh_install_gets_an_operator_with_a_generated_password_shown_once():
    created = operator_ensure(email=None, password=None)
    again = operator_ensure(email=None, password=None)

    operator = User.objects.get(email=DEFAULT_OPERATOR_EMAIL)
    assert created.created and created.generated_password
    assert operator.is_superuser and operator.is_staff
    assert operator.check_password(created.generated_password)
    assert created.generated_password not in operator.password  # only its hash is stored
    assert not again.created and again.generated_password is None
    assert User.objects.filter(is_superuser=True).count() == 1


def test_credentials_from_the_environment_are_used_and_never_echoed(monkeypatch, capsys):
    monkeypatch.setenv("OPERATOR_EMAIL", "Ops@Example.com")
    monkeypatch.setenv("OPERATOR_PASSWORD", "an operator passphrase")

    call_command("ensure_operator")

    operator = User.objects.get(is_superuser=True)
    printed = capsys.readouterr().out
    assert operator.email == "ops@example.com" and operator.check_password("an operator passphrase")
    assert "ops@example.com" in printed and "an operator passphrase" not in printed


def test_an_existing_superuser_is_left_alone_whatever_the_environment_says(monkeypatch, capsys):
    User.objects.create_superuser(email="first@example.com", password="the first passphrase")
    monkeypatch.setenv("OPERATOR_EMAIL", "second@example.com")
    monkeypatch.setenv("OPERATOR_PASSWORD", "another passphrase")

    call_command("ensure_operator")

    assert list(User.objects.values_list("email", flat=True)) == ["first@example.com"]
    assert User.objects.get().check_password("the first passphrase")
    assert "first@example.com (exists" in capsys.readouterr().out
