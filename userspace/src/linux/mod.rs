//! The Linux sensor.
