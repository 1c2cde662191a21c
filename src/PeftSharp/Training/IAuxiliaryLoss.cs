using static TorchSharp.torch;

namespace PeftSharp.Training;

/// <summary>
/// A training hook that adds a term to the loss of every micro-batch, from what the model computed in its forward (a
/// mixture-of-experts load-balancing loss, a regulariser on activations). The trainer calls <see cref="BeginForward"/>
/// just before the forward of each micro-batch and <see cref="EndForward"/> right after it, inside the micro-batch's
/// dispose scope, and backpropagates the sum. Found like every <see cref="ITrainingHooks"/> (method descriptors, adapter
/// layers, <see cref="TrainerOptions.Hooks"/>). Evaluation losses do not include the term.
/// </summary>
public interface IAuxiliaryLoss : ITrainingHooks
{
    /// <summary>Before the forward of <paramref name="batch"/>: start collecting what the term needs.</summary>
    void BeginForward(Batch batch);

    /// <summary>After the forward: the 0-d term to add to the batch's loss (null: nothing this time); stop collecting.</summary>
    Tensor? EndForward(Batch batch);
}
