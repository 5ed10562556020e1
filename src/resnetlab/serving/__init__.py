"""``resnetlab serve``: a model behind one local web page and a JSON endpoint (``app.py``), run by
uvicorn (``server.py``). An optional extra: ``pip install 'resnetlab[serve]'``."""
