"""The `moderate_image` route; export copies model.py and its helper modules into the version dir."""
