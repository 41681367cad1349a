//! Importing pretrained weights from registry packages into safetensors.
