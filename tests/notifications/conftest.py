"""The FCM stand-in for every push test: a throwaway RSA key made here is the service
account's, and the settings point FCM and its token endpoint at the loopback receiver."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.notifications.fcm_server import PROJECT, FcmReceiver, fcm_receiver

CLIENT_EMAIL = f"push@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def service_account_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_json(key: rsa.RSAPrivateKey, token_uri: str) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test-key-1",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "token_uri": token_uri,
        }
    )


@pytest.fixture
def fcm(settings: Any, service_account_key: rsa.RSAPrivateKey) -> Iterator[FcmReceiver]:
    with fcm_receiver(service_account_key.public_key(), CLIENT_EMAIL) as receiver:
        settings.FCM_SERVICE_ACCOUNT_KEY = service_account_json(service_account_key, receiver.token_uri)
        settings.FCM_ENDPOINT = receiver.root
        settings.FCM_PROJECT_ID = ""
        settings.FCM_TOKEN_URI = ""
        yield receiver
