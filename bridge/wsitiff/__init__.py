"""Scanner TIFF dialects (Aperio SVS, Akoya QPTIFF, Hamamatsu NDPI, Philips TIFF, generic tiled
pyramids) -> slide model, tiles copied as stored.

``reader.read`` picks the dialect by what tifffile recognises (``TiffFile.is_svs``, ``is_qpi``,
``is_ndpi``, ``is_philips``; else a generic pyramid); one small module per dialect reads its
metadata (``svs``, ``qptiff``, ``ndpi``, ``philips``, ``generic``). Every value read is listed in
``mappings/wsi_tiff_dialects.md`` with the document or reader code it was checked against.
"""
