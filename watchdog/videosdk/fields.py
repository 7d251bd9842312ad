"""The numeric fields of a VideoSDK stats sample that rules can use.

VideoSDK documents these names but not their units; we keep the API's own
names so a rule reads like the JSON an operator sees with curl.
"""

from __future__ import annotations

SAMPLE_FIELDS: dict[str, str] = {
    "recvAudioPacketLost": "audio packets lost while receiving (per sample)",
    "recvVideoPacketLost": "video packets lost while receiving (per sample)",
    "sendAudioPacketLost": "audio packets lost while sending (per sample)",
    "sendVideoPacketLost": "video packets lost while sending (per sample)",
    "averageAudioRtt": "audio round-trip time (ms)",
    "averageVideoRtt": "video round-trip time (ms)",
    "averageAudioJitter": "audio jitter (ms)",
    "averageVideoJitter": "video jitter (ms)",
    "averageSendAudioBitrate": "audio send bitrate (bit/s)",
    "averageSendVideoBitrate": "video send bitrate (bit/s)",
    "averageRecvAudioBitrate": "audio receive bitrate (bit/s)",
    "averageRecvVideoBitrate": "video receive bitrate (bit/s)",
    "qualityScore.audio": "audio quality score (1-5, higher is better)",
    "qualityScore.video": "video quality score (1-5, higher is better)",
}
