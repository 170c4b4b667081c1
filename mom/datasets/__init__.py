"""Image datasets: CUB-200-2011, revisited Oxford/Paris, image folders, Fashion-MNIST."""
