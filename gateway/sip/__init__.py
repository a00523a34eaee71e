"""The SIP voice channel: the gateway's own SIP user agent, for call centres on their own PBX.

The PBX transfers the caller here after the operator hangs up (an INVITE naming the operator
and the hotline call); prompts of `audio/` are played as G.711 over RTP, keys arrive as RFC
4733 telephone-events (or SIP INFO), and the same flow engine and survey state as on Twilio
run the survey (gateway.phone_surveys). It imports the core only, never another channel.
"""
