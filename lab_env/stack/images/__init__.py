"""The image bakery: every image the project names, built here, never pulled.

    lab-env images build [NAME...]     # idempotent: an image whose recipe is unchanged is kept
    lab-env images status              # what is built, its size and its age

No image registry is reachable from the machines this course is built on, so
each image is a local stand-in for an upstream one, made from Debian's
packages and the project's own builds, tagged ``localhost/lab-env/<name>:<tag>``.
``catalog`` names them and the upstream image each stands in for;
devcontainer/README.md says, image by image, what a stand-in reproduces and
what it does not. ``recipes`` holds how each is made; ``bakery`` builds them in
dependency order and reports what is there.
"""
