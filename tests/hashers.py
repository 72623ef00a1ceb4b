"""The password hasher of the test processes: Django's own PBKDF2, with fewer iterations.
At the production count (1,000,000, about 0.25 s of CPU) every user a factory makes cost
more than most tests; the suite's workers share two cores. Hashes keep the production
algorithm's name and carry their iteration count, so the servers and workers that tests
start as subprocesses (on the production hasher) still check them."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FewIterationsPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
