"""The studio: a local web page to write, compose, play and listen (`wavegen studio`, docs/studio.md).

server.py is the ASGI app (FastAPI) and its job queue; static/ the page (plain JavaScript, shipped in
the package); listening.py the listening test (pairs of clips, answers, their summary).
"""
