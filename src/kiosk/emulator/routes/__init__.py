"""Azure DevOps REST routes by area, each module adding its area's routes to the app.

(Added to the app itself, not through ``include_router``: the app makes every path
case-insensitive, as Azure's are, by recompiling its routes' patterns.)

:mod:`kiosk.emulator.app` includes them; the JSON they answer is shaped by pure functions
(:mod:`kiosk.emulator.discovery`, :mod:`kiosk.emulator.shapes`), so routing stays apart from shaping.
"""
