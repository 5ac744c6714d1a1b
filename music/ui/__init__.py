"""What members click: the live "Now playing" message (live.py: what it shows and when it is
edited, no Discord), what each button does (controls.py: one control-layer intent per button)
and the discord.ui views (views.py)."""
