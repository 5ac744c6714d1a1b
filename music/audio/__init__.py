"""Audio: container parsers (ogg, webm), the HTTP input (fetch), ffmpeg, the per-track stream,
the per-guild chaining source and the shared sender.

The package itself imports nothing, so the parsers and the stream import without discord.py;
only chain, source and sender (the discord.py AudioSource side) need it. Import the modules:
``from music.audio.source import ChainSource, TrackStream``.
"""
