# The controller image (Dockerfile; docs/kubernetes.md "The image"):
#   make image-tools   install Debian's podman, buildah, runc and debootstrap where missing
#   make image         build it with podman, FROM a Debian base made with debootstrap (no
#                      registry needed); `make image BASE=python:3.11-slim` builds FROM that
#                      instead. Cached by a hash of its inputs (a no-op when nothing changed);
#                      the base and the wheels are cached in ~/.cache/elastic-autoscaler/image.
# tests/image runs the image built for the current sources (skipped without it outside CI).
.PHONY: image image-tools

image-tools:
	bash scripts/install-podman.sh

image: install image-tools
	bash scripts/build-image.sh $(if $(BASE),--base $(BASE))

# `make test` (and so CI) builds the image first; when the inputs are unchanged this is a no-op.
TEST_DEPS += image
