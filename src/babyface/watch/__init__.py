"""``babyface watch``: a baby monitor (see ``babyface.watch.monitor``)."""

from babyface.watch.monitor import watch
from babyface.watch.sinks import WEBHOOK_DEADLINE, EventSink, Webhook, post_json
from babyface.watch.state import EventTracker

__all__ = ["WEBHOOK_DEADLINE", "EventSink", "EventTracker", "Webhook", "post_json", "watch"]
