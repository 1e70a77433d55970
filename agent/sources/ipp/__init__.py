"""Network printers over IPP: the codec, the pure mapping, the polling source."""
