"""The synthetic task written as the image and mask files a user would have."""


def write_task_as_files(folder, n, with_masks=True, size=128):
    """n task images as PNGs a user would have (ImageNet-normalized on load), and masks."""
    import numpy as np
    from PIL import Image

    from unet_decoder.training import make_batch
    from unet_decoder.training.images import IMAGENET_MEAN, IMAGENET_STD
    from unet_decoder.training.task import HELD_OUT_SEED

    batch = make_batch(n, size, seed=HELD_OUT_SEED)
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD).reshape(3, 1, 1)
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(batch.images.numpy(), batch.masks.numpy(), strict=True)):
        pixels = np.clip((image * std + mean) * 255, 0, 255).round().astype(np.uint8)
        Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / "images" / f"{i:02d}.png")
        if with_masks:
            Image.fromarray(mask.astype(np.uint8), mode="L").save(folder / "masks" / f"{i:02d}.png")
