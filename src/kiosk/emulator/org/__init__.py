"""An emulated Azure DevOps organisation's data (:mod:`.model`) and its generator (:mod:`.generate`)."""
