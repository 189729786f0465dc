// Ludus images, built with `docker buildx bake -f docker/docker-bake.hcl [target]` from the repo root.
//
//   gpu      multi-platform manifest: linux/amd64 (CUDA) + linux/arm64 (Jetson Orin, JetPack 6)
//   cpu      multi-platform manifest: python:3.10-slim, CPU torch (clusters without GPUs)
//   amd64    linux/amd64 GPU image alone (tag suffix -amd64)
//   jetson   linux/arm64 Jetson image alone (tag suffix -jetson)
//
// Variables come from the environment: REGISTRY=ghcr.io/acme TAG=1.2.3 PLATFORMS=linux/amd64,linux/arm64
// (`make image-multiarch k8s-image REGISTRY=... TAG=...` builds, pushes and points k8s/ at the same image).
// Ray refuses a node whose Python (patch level included) or Ray differs from the head's: both are pinned
// here once for every target and asserted inside each image at build time (docker/smoke.py).

variable "REGISTRY" {
  default = "registry.example.com/ludus"
}

variable "IMAGE" {
  default = "ludus"
}

variable "TAG" {
  default = "0.1.0"
}

variable "PLATFORMS" {
  default = "linux/amd64,linux/arm64"
}

variable "PYTHON_VERSION" {
  default = "3.10.12"
}

variable "RAY_VERSION" {
  default = "2.60.0"
}

variable "REVISION" {
  default = ""
}

variable "CREATED" {
  default = ""
}

group "default" {
  targets = ["gpu", "cpu"]
}

target "_common" {
  context    = "."
  dockerfile = "docker/Dockerfile"
  target     = "runtime"
  args = {
    PYTHON_VERSION = PYTHON_VERSION
    RAY_VERSION    = RAY_VERSION
    VERSION        = TAG
    REVISION       = REVISION
    CREATED        = CREATED
  }
}

target "gpu" {
  inherits  = ["_common"]
  args      = { VARIANT = "gpu" }
  platforms = split(",", PLATFORMS)
  tags      = ["${REGISTRY}/${IMAGE}:${TAG}"]
}

target "cpu" {
  inherits  = ["_common"]
  args      = { VARIANT = "cpu" }
  platforms = split(",", PLATFORMS)
  tags      = ["${REGISTRY}/${IMAGE}:${TAG}-cpu"]
}

target "amd64" {
  inherits  = ["_common"]
  args      = { VARIANT = "gpu" }
  platforms = ["linux/amd64"]
  tags      = ["${REGISTRY}/${IMAGE}:${TAG}-amd64"]
}

target "jetson" {
  inherits  = ["_common"]
  args      = { VARIANT = "gpu" }
  platforms = ["linux/arm64"]
  tags      = ["${REGISTRY}/${IMAGE}:${TAG}-jetson"]
}
