"""Video: the `marquee video` commands and the contact sheet."""
