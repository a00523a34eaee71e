"""The web survey: a link per survey (`/r/<token>`), a phone-friendly page that runs the same
flow as the IVR and SMS through the pure engine, one-tap first answers, email invitations."""
