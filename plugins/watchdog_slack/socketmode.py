"""Clicks over Socket Mode: one outbound WebSocket, so no public endpoint is needed.

slack-sdk's built-in client (no extra dependency) asks ``apps.connections.open``
with the app-level token (``xapp-...``, scope ``connections:write``) for a
WebSocket URL, reconnects when Slack rotates it, and hands each envelope here;
every envelope is acknowledged with its ``envelope_id``, a slash command's
ack carrying the ephemeral answer.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

from watchdog_slack.interactions import Interactions


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

    def __repr__(self) -> str:
        return "SocketListener(app_token='**********')"

    def start(self) -> None:
        self.client.connect()
        self.log.info("listening for Slack clicks over Socket Mode")

    def close(self) -> None:
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
