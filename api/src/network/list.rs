//! Neutron's list conventions (in progress).
