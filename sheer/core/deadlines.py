"""Sessions waiting for a deadline, sans-IO: what sheer.core.tcp's sessions use for nginx's stream timeouts
(`proxy_protocol_timeout`, `proxy_connect_timeout`, `proxy_timeout`).

Every session of a server waits the same time in each phase, so a queue per timeout, kept in the order
sessions entered it, is also in deadline order: watching is a dictionary insert, forgetting a delete,
expiring pops from the front, and one timer of the driver, set for the earliest front, serves them all
(where a timer per session would cost an allocation and a heap operation per connection).
"""

from __future__ import annotations

from collections.abc import Hashable

Queue = dict[Hashable, float]      # item -> its deadline, in deadline order


class Deadlines:
    __slots__ = ("armed", "queues")

    def __init__(self) -> None:
        self.queues: dict[float, Queue] = {}
        self.armed: float | None = None      # when the driver's timer fires (None: not set)

    def queue(self, timeout: float) -> Queue:
        """The queue of the items waiting `timeout`: `queue[item] = now + timeout` watches one (append
        only: a deadline is never before the ones already there), `queue.pop(item)` forgets it."""
        queue = self.queues.get(timeout)
        if queue is None:
            queue = self.queues[timeout] = {}
        return queue

    def watch(self, item: Hashable, timeout: float, now: float) -> bool:
        """`item` is due at now + timeout. True when that is before the driver's timer: set it again
        (to `next_deadline()`)."""
        deadline = now + timeout
        self.queue(timeout)[item] = deadline
        return self.earlier(deadline)

    def earlier(self, deadline: float) -> bool:
        armed = self.armed
        return armed is None or deadline < armed

    def forget(self, item: Hashable, timeout: float) -> None:
        queue = self.queues.get(timeout)
        if queue is not None:
            queue.pop(item, None)

    def due(self, now: float) -> list[Hashable]:
        """The items whose deadline has come, taken out of their queues, earliest queue first."""
        items: list[Hashable] = []
        for queue in self.queues.values():
            while queue:
                item = next(iter(queue))
                if queue[item] > now:
                    break
                del queue[item]
                items.append(item)
        return items

    def next_deadline(self) -> float | None:
        fronts = [next(iter(queue.values())) for queue in self.queues.values() if queue]
        return min(fronts) if fronts else None

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.queues.values())
