"""Scene assembly: backgrounds and the composition of people, props, camera and light into one image."""
