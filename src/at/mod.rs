//! AT command engine, 3GPP TS 27.007 and TS 27.005.
