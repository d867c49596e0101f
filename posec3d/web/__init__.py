"""The web app behind ``posec3d serve``: Gradio pages and an HTTP API over one recognizer.

Needs the ``[web]`` extra (gradio, fastapi, uvicorn, python-multipart). Nothing else in posec3d
imports this package, so the core installs and runs without them. ``service`` holds the work the
pages and the API share (limits, temporary files, the serialised recognizer); ``api`` the FastAPI
routes, ``pages`` the Gradio tabs and ``server`` puts them together and runs uvicorn.
"""
