"""Clicks over Socket Mode: one outbound WebSocket, so no public endpoint is needed.

slack-sdk's built-in client (no extra dependency) asks ``apps.connections.open``
with the app-level token (``xapp-...``, scope ``connections:write``) for a
WebSocket URL, reconnects when Slack rotates it, and hands each envelope here;
every envelope is acknowledged with its ``envelope_id``, a slash command's
ack carrying the ephemeral answer.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

from watchdog_slack.interactions import Interactions

MAX_RETRY = 60.0  # seconds between attempts to reach Slack, at most


class SocketListener:
    def __init__(
        self,
        app_token: str,
        web_client: WebClient,
        interactions: Interactions,
        logger: logging.Logger,
    ) -> None:
        self.interactions = interactions
        self.log = logger
        self.client = SocketModeClient(
            app_token=app_token,
            web_client=web_client,
            logger=logger,
            auto_reconnect_enabled=True,
        )
        self.client.socket_mode_request_listeners.append(self._on_request)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return "SocketListener(app_token='**********')"

    def start(self) -> None:
        """Connect in the background, retrying with backoff: Slack may be unreachable now."""
        self._thread = threading.Thread(target=self._connect, name="slack-socket-mode", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        delay = 1.0
        while not self._closed.is_set():
            try:
                self.client.connect()
            except Exception as exc:  # a bad app token, Slack unreachable: keep trying
                self.log.error(
                    "cannot open the Slack Socket Mode connection (retrying in %gs): %s",
                    delay,
                    exc,
                )
                self._closed.wait(delay)
                delay = min(delay * 2, MAX_RETRY)
                continue
            self.log.info("listening for Slack clicks over Socket Mode")
            return

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.close()

    def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        answer: dict[str, Any] | None = None
        try:
            payload = request.payload or {}
            if request.type == "interactive" and payload.get("type") == "block_actions":
                self.interactions.block_actions(payload)
            elif request.type == "slash_commands":
                answer = self.interactions.command(payload)
        except Exception:  # one bad click must not end the listener
            self.log.exception("handling a Slack %s envelope failed", request.type)
        finally:
            client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id, payload=answer)
            )
