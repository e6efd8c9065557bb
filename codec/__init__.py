"""codec: video in, ladders out. Perceptual metrics, classic codecs and the Promptus and
PromptMobile prompt codecs. Heavy libraries (torch, diffusers, PyAV) import lazily."""
