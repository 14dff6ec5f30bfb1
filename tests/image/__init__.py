"""The controller image (Dockerfile, make image): built with podman and run."""
