"""shadowguard in one file: the same code run as primary and as shadow traffic.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import shadowguard
from shadowguard import detect, shadow, side_effect

sent: list[str] = []


@side_effect(returns="queued")
def send_receipt(email: str) -> str:
    """A real side effect: in production this would call the mail provider."""
    sent.append(email)
    return "sent"


def handle(headers: dict[str, str], email: str) -> str:
    """What a middleware does for every request: detect, then run in the right scope."""
    if detect(headers).shadow:
        with shadow("mirrored request") as scope:
            result = send_receipt(email)
        print(
            f"  shadow: suppressed {scope.total} side effect(s): {[s.target for s in scope.suppressed]}"
        )
        return result
    return send_receipt(email)


def main() -> None:
    print(f"shadowguard {shadowguard.__version__}")
    print(
        "primary request (Host: orders:8080) ->", handle({"Host": "orders:8080"}, "ann@example.com")
    )
    print(
        "mirrored request (Host: orders-shadow:8080) ->",
        handle({"Host": "orders-shadow:8080"}, "ann@example.com"),
    )
    print(f"receipts really sent: {sent}")
    assert sent == ["ann@example.com"], "the shadow request must not send a receipt"


if __name__ == "__main__":
    main()
