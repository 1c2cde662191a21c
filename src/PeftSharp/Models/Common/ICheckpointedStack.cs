namespace PeftSharp.Models.Common;

/// <summary>
/// A stack of decoder/encoder layers that can run each layer through <see cref="Checkpointing"/>; the
/// <see cref="PretrainedModel.GradientCheckpointing"/> switch sets every such stack inside the model.
/// </summary>
internal interface ICheckpointedStack
{
    /// <summary>Checkpoint each layer (only in training mode, with gradients enabled and no KV cache).</summary>
    bool GradientCheckpointing { get; set; }
}
