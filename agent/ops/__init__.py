"""Operations: systemd, doctor, support bundle, broker provisioning."""
