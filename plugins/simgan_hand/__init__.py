"""simgan-toolkit plugin: the hand-pose depth domain (kinematic hand, depth renderer, Kinect-like target)."""
