"""``manage.py run_kite_sim`` serves the demo account until SIGTERM."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from kiteconnect import KiteConnect

from brokers.kite_sim import DEMO_API_KEY, DEMO_API_SECRET, DEMO_USER_ID
from brokers.kite_sim.accounts import Accounts
from brokers.kite_sim.errors import KiteError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def test_command_serves_the_demo_account_until_terminated():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_kite_sim", "--port", "0", "--ws-port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        api_root = None
        while api_root is None:  # JSON log lines come first, then the banner
            line = process.stdout.readline()
            assert line, "run_kite_sim exited before printing its roots"
            api_root = re.search(r"KITE_API_ROOT=(\S+)", line)
        client = KiteConnect(DEMO_API_KEY, root=api_root.group(1))
        login = client.login_url().replace("https://kite.zerodha.com", api_root.group(1))
        assert login.startswith(api_root.group(1) + "/connect/login?api_key=")

        redirect = requests.get(login, allow_redirects=False, timeout=5).headers["Location"]
        request_token = re.search(r"request_token=(\w+)", redirect)
        assert request_token
        client.generate_session(request_token.group(1), api_secret=DEMO_API_SECRET)

        assert client.profile()["user_id"] == DEMO_USER_ID
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_request_token_unknown_api_key_is_an_input_error():
    with pytest.raises(KiteError) as raised:
        Accounts().issue_request_token("nobody")

    assert raised.value.error_type == "InputException"
