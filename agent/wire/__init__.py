"""Wire models: the device protocol and the household topics (pydantic, strict), and
their JSON Schemas."""
