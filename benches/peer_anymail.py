"""The peer side of benches/peer.sh: django-anymail's SendGrid tracking webhook.

Three commands, run by peer.sh:

  bodies FIXTURES OUT   writes OUT/sendgrid-1.json (one event) and
                        OUT/sendgrid-100.json (100 events cycled from every
                        fixture event, each with its own sg_message_id,
                        sg_event_id and recipient), once, from our fixtures.
  time DIR              times anymail's SendGridTrackingWebhookView on both
                        bodies and prints JSON figures (µs per request).
  table ANYMAIL OURS    prints the comparison table from the JSON of `time`
                        and the output of `PEER_BODIES=DIR cargo bench --bench cpu -- peer:`.

The view is called the way Django's URL resolver calls it, on a request from
Django's RequestFactory (POST, application/json, HTTPS, the basic-auth header),
with the tracking signal connected to a no-op receiver; no middleware, no
WSGI server. Requests are built before the clock starts; the figure is the
median of the requests' thread CPU times after a warm-up.
"""

import base64
import json
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

BASIC_AUTH = "user:pass"
SIZES = (1, 100)
ROUNDS = 31
WARM_UP_SECONDS = 0.5  # of CPU time
# Requests built ahead per round (ROUNDS × PER_ROUND requests are timed).
PER_ROUND = {1: 400, 100: 8}
TARGETS = {1: 40, 100: 10}


def body_name(n):
    return f"sendgrid-{n}.json"


def fixture_events(fixtures):
    """Every event of every fixture, in file-name order (arrays flattened)."""
    events = []
    for path in sorted(Path(fixtures).glob("*.json")):
        data = json.loads(path.read_text())
        events.extend(data if isinstance(data, list) else [data])
    return events


def write_bodies(fixtures, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    single = json.loads((Path(fixtures) / "docs_delivered.json").read_text())
    pool = fixture_events(fixtures)
    batch = []
    for i in range(100):
        event = dict(pool[i % len(pool)])
        event["sg_message_id"] = f"peer{i:03d}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
        event["sg_event_id"] = f"peer-event-{i:03d}"
        event["email"] = f"user{i}@example.com"
        batch.append(event)
    for n, events in ((1, single), (100, batch)):
        # Compact, as SendGrid posts it.
        (out / body_name(n)).write_text(json.dumps(events, separators=(",", ":")))
        print(f"{out / body_name(n)}: {len(events)} event(s)", file=sys.stderr)


def django_ready():
    """Minimal Django settings for anymail's webhook views."""
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="peer-bench",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["anymail"],
        USE_TZ=True,
        ANYMAIL={"WEBHOOK_SECRET": BASIC_AUTH},
    )
    django.setup()
    from anymail.exceptions import AnymailNotSupportedWarning

    # Every request instantiates the view, which warns that SendGrid support
    # was dropped upstream; the warning call stays in the timing, its output not.
    warnings.simplefilter("ignore", AnymailNotSupportedWarning)


def signing_pair():
    """A throwaway P-256 key: the private half signs, the base64 SPKI half is
    what anymail's SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY holds."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def sign(timestamp, body):
        signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    return base64.b64encode(spki).decode(), sign


def median_us(view, make_request, per_round, expected_events, received):
    """Median CPU µs of one request to `view`, each timed alone, after a warm-up.

    Thread CPU time, not wall time: on a shared machine a 100-event request
    (milliseconds) is preempted often, and wall time would count the waits."""
    samples = []

    def run(requests, keep):
        for request in requests:
            start = time.thread_time_ns()
            response = view(request)
            elapsed = time.thread_time_ns() - start
            if response.status_code != 200:
                raise SystemExit(f"anymail answered {response.status_code}: {response.content!r}")
            if keep:
                samples.append(elapsed)

    warm_until = time.thread_time() + WARM_UP_SECONDS
    while time.thread_time() < warm_until:
        run([make_request() for _ in range(per_round)], keep=False)
    received.clear()
    for _ in range(ROUNDS):
        run([make_request() for _ in range(per_round)], keep=True)
    # The receiver saw every event of every timed request: nothing was skipped.
    if len(received) != ROUNDS * per_round * expected_events:
        raise SystemExit(f"tracking signal saw {len(received)} events, expected "
                         f"{ROUNDS * per_round * expected_events}")
    return statistics.median(samples) / 1e3


def time_anymail(directory):
    django_ready()
    from django.test import RequestFactory
    from anymail.signals import tracking
    from anymail.webhooks.sendgrid import SendGridTrackingWebhookView

    received = []

    def receiver(sender, event, esp_name, **kwargs):
        received.append(1)

    tracking.connect(receiver, weak=False)
    factory = RequestFactory()
    auth = "Basic " + base64.b64encode(BASIC_AUTH.encode()).decode()
    key, sign = signing_pair()
    views = {
        "basic_auth": SendGridTrackingWebhookView.as_view(),
        "signature": SendGridTrackingWebhookView.as_view(tracking_webhook_verification_key=key),
    }
    figures = {}
    for n in SIZES:
        body = (Path(directory) / body_name(n)).read_bytes()
        events = len(json.loads(body))
        timestamp = str(int(time.time()))
        headers = {
            "basic_auth": {},
            "signature": {
                "X-Twilio-Email-Event-Webhook-Signature": sign(timestamp, body),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            },
        }
        for variant, view in views.items():
            def make_request():
                return factory.post(
                    "/anymail/sendgrid/tracking/",
                    data=body,
                    content_type="application/json",
                    secure=True,
                    headers={"Authorization": auth, **headers[variant]},
                )

            us = median_us(view, make_request, PER_ROUND[n], events, received)
            figures[f"{n}/{variant}"] = {"events": events, "bytes": len(body), "us_per_request": us}
            print(f"anymail sendgrid {n} ({variant}): {us:.1f} µs per request", file=sys.stderr)
    from importlib.metadata import version

    figures["versions"] = {name: version(name) for name in ("django", "django-anymail", "cryptography")}
    figures["versions"]["python"] = sys.version.split()[0]
    print(json.dumps(figures, indent=1))


# `| peer: sendgrid 100 (… B, 100 events): normalize + item built | 1.23 µs per request, … |`
OUR_ROW = re.compile(
    r"^\| peer: sendgrid (\d+) \(\d+ B, \d+ events?\): (normalize \+ item built|with ECDSA P-256 verification)"
    r" \| ([0-9.]+) µs per request"
)


def table(anymail_json, ours_txt):
    anymail = json.loads(Path(anymail_json).read_text())
    ours = {}
    for line in Path(ours_txt).read_text().splitlines():
        match = OUR_ROW.match(line)
        if match:
            n, stage, us = match.groups()
            ours[(int(n), "signature" if stage.startswith("with") else "plain")] = float(us)
    missing = [(n, s) for n in SIZES for s in ("plain", "signature") if (n, s) not in ours]
    if missing:
        raise SystemExit(f"no figure for {missing} in {ours_txt}")

    def per_event(us, n):
        return f"{us:.2f} µs ({us / n:.2f} µs/event)" if n > 1 else f"{us:.2f} µs"

    print("| body | anymail, basic auth (µs) | ours, normalize + item built (µs) | ratio "
          "| anymail, + ECDSA (µs) | ours, + ECDSA (µs) | ratio | target |")
    print("|---|---|---|---|---|---|---|---|")
    for n in SIZES:
        plain = anymail[f"{n}/basic_auth"]
        signed = anymail[f"{n}/signature"]
        a_plain, a_signed = plain["us_per_request"], signed["us_per_request"]
        o_plain, o_signed = ours[(n, "plain")], ours[(n, "signature")]
        r_plain, r_signed = a_plain / o_plain, a_signed / o_signed
        target = TARGETS[n]
        verdict = "met" if min(r_plain, r_signed) >= target else (
            "met without signature only" if r_plain >= target else "missed")
        print(f"| SendGrid, {n} event{'s' if n > 1 else ''} ({plain['bytes']} B) "
              f"| {per_event(a_plain, n)} | {per_event(o_plain, n)} | {r_plain:.0f}× "
              f"| {per_event(a_signed, n)} | {per_event(o_signed, n)} | {r_signed:.1f}× "
              f"| ≥ {target}× ({verdict}) |")
    versions = ", ".join(f"{name} {v}" for name, v in anymail["versions"].items())
    print(f"\nanymail: {versions}; CPU time per request, median. Ours: wall time per request, "
          "median of 10,001 requests timed alone (cargo bench profile, mimalloc).")


def main(argv):
    commands = {"bodies": (write_bodies, 2), "time": (time_anymail, 1), "table": (table, 2)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        raise SystemExit(__doc__)
    command, _ = commands[argv[1]]
    command(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
