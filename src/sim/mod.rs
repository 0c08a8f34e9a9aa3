//! A simulated GSM network of modems that speak AT over pseudo-terminals.
