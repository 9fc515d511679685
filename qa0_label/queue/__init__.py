"""Which EB an AoD reviews next: routing, leases, look-ahead reservations."""
