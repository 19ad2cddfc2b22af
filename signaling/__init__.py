"""WebRTC signaling as a library: protocol, rooms, bus, WebSocket handler, aiortc peers.

It never imports telmi; telmi hands it callbacks (authorise a join token, record presence).
"""
