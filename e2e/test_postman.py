"""The Postman collection, run by newman against the live stack: the API as Postman users see it.

newman comes from npm, pinned in package.json/package-lock.json and installed into
node_modules/ by `npm ci` (.ci/run does it). The collection registers its own facilitator and
user, so it runs beside the other end-to-end tests on the same server.
"""

import shutil
import subprocess

import pytest

from e2e.stack import ARTIFACTS, BASE_DIR, CRM_SECRET

pytestmark = pytest.mark.e2e

NEWMAN = BASE_DIR / "node_modules" / ".bin" / "newman"
COLLECTION = BASE_DIR / "postman" / "ahoum.postman_collection.json"
ENVIRONMENT = BASE_DIR / "postman" / "local.postman_environment.json"


@pytest.mark.skipif(
    shutil.which("node") is None,
    reason="Node.js is not installed: newman (npm) cannot run the Postman collection",
)
def test_postman_collection_passes_against_the_live_server(stack):
    assert NEWMAN.is_file(), f"{NEWMAN} is missing: run `npm ci` at the repository's top"

    log_path = ARTIFACTS / "newman.log"
    junit_path = ARTIFACTS / "newman-junit.xml"
    stripe_webhook_uuid = stack.webhook_url.rstrip("/").rsplit("/", 1)[1]
    command = [
        str(NEWMAN),
        "run",
        str(COLLECTION),
        "--environment",
        str(ENVIRONMENT),
        "--env-var",
        f"baseUrl={stack.base_url}",
        "--env-var",
        f"crmSecret={CRM_SECRET}",
        "--env-var",
        f"stripeWebhookUuid={stripe_webhook_uuid}",
        "--reporters",
        "cli,junit",
        "--reporter-junit-export",
        str(junit_path),
        "--timeout-request",
        "30000",
        "--color",
        "off",
    ]
    shown = " ".join(command).replace(CRM_SECRET, "<CRM_SECRET>")
    try:
        result = subprocess.run(
            command,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout or b""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        log_path.write_text(f"$ {shown}\n\n{output}\n(timed out after 300 s)\n")
        raise AssertionError(f"newman did not finish in 300 s; see {log_path}") from error
    log_path.write_text(f"$ {shown}\n\n{result.stdout}{result.stderr}")

    assert result.returncode == 0, (
        f"newman failed (exit {result.returncode}); full output in {log_path}, "
        f"JUnit in {junit_path}:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    )
