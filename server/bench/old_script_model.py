#!/usr/bin/env python3
"""Behavioural model of Stack's official SCIM deletion script, for the benchmark.

Models StackExchange/so4t_scim_user_deletion as read on GitHub:
  so4t_scim_user_deletion.py at commit 0e160dfea6c5943e6fe8cfe8159b258c95d84958,
  so4t_scim.py               at commit 98ddb39a0f9632cfa19e87e81fa28674a27bdf66,
  requirements.txt: requests 2.32.5, tenacity 9.1.2.
Written from scratch with the Python standard library; none of the script's code is copied.
Log lines are paraphrased; the JSON files keep the script's exact keys and values, because
that is what admins send to Stack support and what the benchmark compares.

What the script does, and so what this model does (each point read in the source):
 1. Connection test: one GET on the users endpoint without parameters. Anything but 200 ends
    the run with `raise SystemExit` (exit status 0, no report). Only an SSL error is handled
    (it asks "Proceed without SSL verification? (y/n)"); any other connection error is an
    uncaught exception (traceback, exit status 1).
 2. Endpoint: `{url}/auth/scim/v2/users` when the URL contains "stackoverflowteams.com",
    otherwise `{url}/api/scim/v2/users`. The URL is used as given (a trailing "/" doubles).
 3. Listing happens before the flags are checked: pages of `count=100` from `startIndex=1`,
    adding 100 to startIndex each time (not the number of items returned, so a server that
    caps pages below 100 makes it skip users), stopping once startIndex > totalResults. Any
    non-200 page (a 429 or 503 included) ends the run with SystemExit: nothing deleted, no
    report. The users are written to `all_users.json` (indent 4) even when the flags are wrong.
 4. `--deactivated` and `--csv` together, or neither: log a hint and stop (after the listing).
 5. `--deactivated`: every listed user with a falsy `active`, in listing order (a user without
    an `active` key crashes the run with KeyError).
 6. `--csv`: `open(path)` with the platform default encoding, `csv.reader`, first cell of every
    row, no trimming (a UTF-8 BOM stays in the first address; a blank line crashes with
    IndexError; a header row becomes an address that is "not found"). Each address is matched,
    case-insensitively, against the FIRST entry of each user's `emails` only (not the primary
    flag, not other entries); the first matching user in listing order wins. A user without an
    `emails` key is skipped; a user with an empty `emails` list crashes the run (IndexError).
    Unmatched addresses give `{"email","status":"failed","message":"User email address not
    found via SCIM API"}`. Duplicate rows are deleted twice (the second gets 404).
 7. Deletion is strictly sequential, one request at a time, with no pause between requests,
    no request timeout (a silent server blocks it forever) and no Retry-After handling.
    DELETE replies:
      204 -> success;
      400 -> error, message = body's ErrorMessage (a non-JSON body crashes the run);
      404 -> error, message "User not found.";
      500 with "Adjust role to User" -> the demotion path (8); the result is ALWAYS reported
             as success unless the retry wrapper gives up;
      500 with "FK_CommunityMemberships_CreationUser" -> error, fixed "creator of a community"
             message;
      500 other -> error, "Failed to delete user. Error message: {ErrorMessage}" (a body with
             no ErrorMessage crashes with TypeError);
      anything else (429, 503, 401, even 200) -> error, message = raw body text.
    So a throttled (429) DELETE is recorded as an error and never retried: the script drops
    throttled deletions. A connection error on DELETE crashes the run (no report).
 8. Demotion path (tenacity: retry only on requests' RequestException, 3 attempts, waits of
    1 s then 2 s, then "Attempted to delete 3 times. Max retries reached. Deletion aborted."):
    PATCH userType=Registered (Content-Type application/scim+json; reply ignored; this call
    passes no `verify`, so it always checks TLS), then PUT `{"active": null, "userType":
    "Registered"}` (404/other statuses are only logged; on 200 it compares `userType`), then
    DELETE again by calling itself, whose result is thrown away. When the site does not allow
    promotion via SCIM, every nested DELETE answers 500 "Adjust role" again and the script
    recurses until Python's recursion limit: RecursionError, traceback, exit status 1, and no
    failures report at all (everything done before is unreported). The real depth depends on
    the frames requests and tenacity use; this model stops at `--model-recursion-levels`
    (default 240, an estimate: 1000 frames / about 4 per level, less the deepest requests call).
 9. Report: `failed_deletions_YYYY-MM-DD_HH-MM-SS.json` (indent 4) holding the list of
    failures (`account_id, account_url = {url}/accounts/{id}, status "error", message`, plus
    `email` in CSV mode), or `{"status":"success","message":"All selected users were deleted
    successfully."}` when the list is empty.

Model-only options (not in the script): `--scim-url` replaces the derived users endpoint (to
point at the fault server's Business path or `/v2/Users`), `--out-dir` puts the JSON files
elsewhere than the working directory, `--summary-json` writes what happened for the benchmark
(outcome, exit status, requests by kind, elapsed seconds). Not modelled: HTTP proxies, and
requests' connection-pool details (the model keeps one keep-alive connection per host, as a
requests.Session does, and reconnects when the server has closed it).
"""

import argparse
import csv
import datetime
import http.client
import json
import logging
import os
import ssl
import sys
import time
import urllib.parse

USER_AGENT = "so4t_scim_user_deletion/1.0 (http://your-app-url.com; your-contact@email.com)"
PAGE_SIZE = 100
RETRY_ATTEMPTS = 3
DEFAULT_RECURSION_LEVELS = 240

log = logging.getLogger("old_script_model")


class RequestError(Exception):
    """Anything requests would raise as a RequestException (transport failures, bad JSON)."""


class TlsError(RequestError):
    """requests.exceptions.SSLError."""


class RetriesExhausted(Exception):
    """tenacity.RetryError."""


class SilentExit(Exception):
    """`raise SystemExit` in the script: ends the run with status 0 and no report."""


class Reply:
    def __init__(self, status, text):
        self.status = status
        self.text = text

    def json(self):
        # requests 2.32: a body that is not JSON raises JSONDecodeError, a RequestException.
        try:
            return json.loads(self.text)
        except ValueError as problem:
            raise RequestError(f"reply is not JSON: {problem}") from None


class Transport:
    """Sequential HTTP with one keep-alive connection per host, like a requests.Session."""

    def __init__(self):
        self.connections = {}
        self.counts = {}

    def _connection(self, scheme, netloc, verify):
        key = (scheme, netloc, verify)
        connection = self.connections.get(key)
        if connection is None:
            if scheme == "https":
                context = ssl.create_default_context()
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                connection = http.client.HTTPSConnection(netloc, timeout=None, context=context)
            else:
                connection = http.client.HTTPConnection(netloc, timeout=None)
            self.connections[key] = connection
        return key, connection

    def send(self, method, url, kind, headers, params=None, body=None, verify=True):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        parts = urllib.parse.urlsplit(url)
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urllib.parse.urlencode(params)
            query = f"{query}&{extra}" if query else extra
        if query:
            target = f"{target}?{query}"
        payload = None
        headers = dict(headers)
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            key, connection = self._connection(parts.scheme, parts.netloc, verify)
            try:
                connection.request(method, target, body=payload, headers=headers)
                response = connection.getresponse()
                text = response.read().decode("utf-8", errors="replace")
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    del self.connections[key]
                return Reply(response.status, text)
            except ssl.SSLError as problem:
                self._drop(key)
                raise TlsError(str(problem)) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as problem:
                # A kept-alive connection the server already closed: urllib3 would open a new one.
                self._drop(key)
                if attempt == 2:
                    raise RequestError(str(problem)) from None
            except (OSError, http.client.HTTPException) as problem:
                self._drop(key)
                raise RequestError(str(problem)) from None
        raise RequestError("unreachable")

    def _drop(self, key):
        connection = self.connections.pop(key, None)
        if connection is not None:
            connection.close()


class OldScriptClient:
    """The script's SCIM client: endpoint choice, connection test, listing, update, delete."""

    def __init__(self, token, url, scim_url, recursion_levels, transport):
        self.base_url = url
        self.headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        if scim_url:
            self.scim_url = scim_url
        elif "stackoverflowteams.com" in url:
            self.scim_url = f"{url}/auth/scim/v2/users"
        else:
            self.scim_url = f"{url}/api/scim/v2/users"
        self.http = transport
        self.recursion_levels = recursion_levels
        self.depth = 0
        self.ssl_verify = self._test_connection()

    def _test_connection(self):
        log.info("Checking the SCIM connection...")
        verify = True
        try:
            reply = self.http.send("GET", self.scim_url, "LIST", self.headers, verify=verify)
        except TlsError:
            log.warning("SSL error while connecting to %s.", self.base_url)
            answer = input("Proceed without SSL verification? (y/n) ")
            if answer.lower() != "y":
                log.info("Exiting...")
                raise SilentExit("stopped at the SSL question")
            verify = False
            reply = self.http.send("GET", self.scim_url, "LIST", self.headers, verify=verify)
        if reply.status != 200:
            log.error("SCIM connection failed (status %s): %s", reply.status, reply.text)
            raise SilentExit(f"connection test answered {reply.status}")
        log.info("SCIM connection works.")
        return verify

    def list_all_users(self):
        users = []
        start_index = 1
        while True:
            log.info("Listing users from startIndex %s", start_index)
            reply = self.http.send(
                "GET",
                self.scim_url,
                "LIST",
                self.headers,
                params={"count": PAGE_SIZE, "startIndex": start_index},
                verify=self.ssl_verify,
            )
            if reply.status != 200:
                log.error("Listing failed (status %s): %s", reply.status, reply.text)
                raise SilentExit(f"listing answered {reply.status}")
            page = reply.json()
            resources = page.get("Resources")
            if resources is None:
                raise TypeError("the page has no Resources list")
            users += resources
            start_index += PAGE_SIZE
            total = page.get("totalResults")
            if total is None:
                raise TypeError("the page has no totalResults")
            if start_index > total:
                return users

    def _demote(self, account_id):
        user_url = f"{self.scim_url}/{account_id}"
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userType", "value": "Registered"}],
        }
        patch_headers = dict(self.headers, **{"Content-Type": "application/scim+json"})
        # The PATCH passes no `verify`, so it checks TLS even after the admin said "y".
        self.http.send("PATCH", user_url, "PATCH", patch_headers, body=patch, verify=True)
        reply = self.http.send(
            "PUT",
            user_url,
            "PUT",
            self.headers,
            body={"active": None, "userType": "Registered"},
            verify=self.ssl_verify,
        )
        if reply.status == 404:
            log.warning("Account %s not found while changing its role.", account_id)
        elif reply.status != 200:
            log.error("Role change failed (status %s): %s", reply.status, reply.text)
        else:
            role = reply.json().get("userType", "Registered")
            if role != "Registered":
                log.warning(
                    "Account %s is still %s: is role change via SCIM allowed in the admin settings?",
                    account_id,
                    role,
                )
            else:
                log.info("Account %s is now Registered.", account_id)

    def _demote_and_delete_again(self, account_id):
        self.depth += 1
        try:
            if self.depth > self.recursion_levels:
                raise RecursionError("maximum recursion depth exceeded (demote and retry loop)")
            log.warning("Demoting account %s to Registered, then deleting again...", account_id)
            self._demote(account_id)
            self.delete_user(account_id)  # its result is discarded, as in the script
        finally:
            self.depth -= 1

    def delete_user(self, account_id):
        result = {
            "account_id": account_id,
            "account_url": f"{self.base_url}/accounts/{account_id}",
            "status": "success",
            "message": "User deleted successfully.",
        }
        log.info("DELETE account %s", account_id)
        reply = self.http.send(
            "DELETE", f"{self.scim_url}/{account_id}", "DELETE", self.headers, verify=self.ssl_verify
        )
        if reply.status == 400:
            result["status"] = "error"
            result["message"] = reply.json().get("ErrorMessage")
        elif reply.status == 404:
            log.error("DELETE %s answered 404: no such user, or SCIM deletion is off.", account_id)
            result["status"] = "error"
            result["message"] = "User not found."
        elif reply.status == 500:
            message = reply.json().get("ErrorMessage")
            if message is None:
                raise TypeError("a 500 reply without ErrorMessage")
            if "Adjust role to User" in message:
                for attempt in range(1, RETRY_ATTEMPTS + 1):
                    try:
                        self._demote_and_delete_again(account_id)
                        break
                    except RequestError as problem:
                        log.warning("Demote-and-delete attempt %s failed: %s", attempt, problem)
                        if attempt == RETRY_ATTEMPTS:
                            result["status"] = "error"
                            result["message"] = (
                                f"Attempted to delete {RETRY_ATTEMPTS} times. "
                                "Max retries reached. Deletion aborted."
                            )
                        else:
                            time.sleep(min(max(2 ** (attempt - 1), 1), 10))
            elif "FK_CommunityMemberships_CreationUser" in message:
                result["status"] = "error"
                result["message"] = (
                    "User cannot be deleted because they are the creator "
                    "of a community. Please contact support."
                )
            else:
                result["status"] = "error"
                result["message"] = f"Failed to delete user. Error message: {message}"
        elif reply.status != 204:
            log.error("DELETE %s answered %s: %s", account_id, reply.status, reply.text)
            result["status"] = "error"
            result["message"] = reply.text
        return result


def addresses_from_csv(path):
    with open(path, "r") as handle:
        return [row[0] for row in csv.reader(handle)]


def find_by_first_email(users, address):
    for user in users:
        try:
            if user["emails"][0]["value"].lower() == address.lower():
                return user
        except KeyError:
            continue
    return None


def write_json(data, path):
    with open(path, "w") as handle:
        handle.write(json.dumps(data, indent=4))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Behavioural model of Stack's so4t_scim_user_deletion script."
    )
    parser.add_argument("--token", required=True, help="SCIM token")
    parser.add_argument("--url", required=True, help="site base URL")
    parser.add_argument("--csv", help="CSV file of email addresses to delete")
    parser.add_argument("--deactivated", action="store_true", help="delete deactivated users")
    parser.add_argument("--scim-url", help="model only: the users endpoint to use instead")
    parser.add_argument("--out-dir", default=".", help="model only: where the JSON files go")
    parser.add_argument("--summary-json", help="model only: write a run summary here")
    parser.add_argument(
        "--model-recursion-levels",
        type=int,
        default=DEFAULT_RECURSION_LEVELS,
        help="model only: demote-and-retry nesting at which the real script hits RecursionError",
    )
    return parser.parse_args(argv)


def run(args, transport, summary):
    client = OldScriptClient(args.token, args.url, args.scim_url, args.model_recursion_levels, transport)
    users = client.list_all_users()
    write_json(users, os.path.join(args.out_dir, "all_users.json"))
    summary["listed"] = len(users)

    if bool(args.deactivated) == bool(args.csv):
        log.info("Give exactly one of --deactivated or --csv (see the README).")
        summary["outcome"] = "no_selection"
        return

    failures = []
    if args.deactivated:
        for user in [u for u in users if not u["active"]]:
            summary["attempted"].append(user["id"])
            result = client.delete_user(user["id"])
            if result["status"] != "success":
                failures.append(result)
    else:
        for address in addresses_from_csv(args.csv):
            user = find_by_first_email(users, address)
            if user is None:
                failures.append(
                    {
                        "email": address,
                        "status": "failed",
                        "message": "User email address not found via SCIM API",
                    }
                )
                continue
            summary["attempted"].append(user["id"])
            result = client.delete_user(user["id"])
            result["email"] = address
            if result["status"] != "success":
                failures.append(result)

    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    report_path = os.path.join(args.out_dir, f"failed_deletions_{stamp}.json")
    if failures:
        log.warning("Some users were not deleted; see %s.", report_path)
        report = failures
    else:
        log.info("All users deleted successfully.")
        report = {"status": "success", "message": "All selected users were deleted successfully."}
    write_json(report, report_path)
    summary["outcome"] = "finished"
    summary["report_path"] = report_path
    summary["failures_reported"] = len(failures)


def main(argv=None):
    logging.basicConfig(format="%(asctime)s - %(message)s", level=logging.INFO)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    transport = Transport()
    summary = {"outcome": None, "reason": None, "listed": None, "attempted": []}
    started = time.monotonic()
    exit_status = 0
    try:
        run(args, transport, summary)
    except SilentExit as stop:
        summary["outcome"] = "exited"
        summary["reason"] = str(stop)
    except Exception as crash:  # the script has no handler here: traceback and status 1
        summary["outcome"] = "crashed"
        summary["reason"] = f"{type(crash).__name__}: {crash}"
        log.error("Traceback (the real script would crash here): %s", summary["reason"])
        exit_status = 1
    summary["exit_status"] = exit_status
    summary["elapsed_seconds"] = round(time.monotonic() - started, 3)
    summary["requests"] = transport.counts
    if args.summary_json:
        write_json(summary, args.summary_json)
    return exit_status


if __name__ == "__main__":
    sys.exit(main())
