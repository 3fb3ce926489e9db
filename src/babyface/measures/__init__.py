"""Face measures: eye openness, smile, brow lowering, frown, mouth opening and head pose per face, from MediaPipe's
landmark and blendshape models (``landmarks``), named after the Baby FACS action units they approximate (``facial``),
for photos (``photos``) and, through ``babyface.video.analysis``, for every face of a video."""
