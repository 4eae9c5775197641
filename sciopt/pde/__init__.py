"""PDE core, PINNs, Lagrangian PINNs and hard-constrained PDE layers."""

# --- PDE core, PINN and Lagrangian PINN (section owned by the PINN work) ---
# --- end PDE core ---

# --- hard-constraint layers (section owned by the hard-constraint work) ---
# --- end hard-constraint layers ---
