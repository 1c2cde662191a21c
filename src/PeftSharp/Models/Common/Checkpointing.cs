using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace PeftSharp.Models.Common;

/// <summary>
/// Gradient (activation) checkpointing of one layer, as PyTorch's reentrant <c>torch.utils.checkpoint</c> that
/// transformers' <c>gradient_checkpointing_enable()</c> applies per decoder layer. The forward runs without recording a
/// graph and keeps only the layer's inputs; the backward runs the layer again with gradients on, on detached copies of
/// those inputs, and backpropagates the incoming gradient through the recomputed graph, so every parameter inside the
/// layer (injected adapter weights included) gets its gradient there, and the input gradients are handed on.
/// The default CPU generator's state is saved before the forward and restored around the recompute, so dropout draws
/// the same masks twice (a CUDA generator is not saved: TorchSharp 0.107 exposes no CUDA RNG state).
/// As with PyTorch's reentrant variant, gradients reach the layer's parameters through <c>backward()</c> only:
/// <c>torch.autograd.grad(loss, parameters)</c> does not see them.
/// </summary>
public static class Checkpointing
{
    /// <summary>
    /// Whether a stack of layers checkpoints this forward: asked for, in training mode, with gradients enabled, and
    /// without a KV cache (a cached forward is inference; the cache must be appended exactly once).
    /// </summary>
    public static bool IsActive(bool enabled, bool training, KvCache? cache) =>
        enabled && training && cache is null && torch.is_grad_enabled();

    /// <summary>
    /// Runs <paramref name="forward"/> (a call of <paramref name="layer"/>) on <paramref name="inputs"/> without
    /// keeping its activations, and recomputes them in the backward. Every tensor the layer reads must come in through
    /// <paramref name="inputs"/> (hidden states, masks, rotary tables; null allowed), not through a closure: the caller's
    /// dispose scope frees its tensors long before the backward runs. Only inputs that require grad get a gradient.
    /// </summary>
    /// <param name="layer">The layer; its trainable parameters decide whether a graph is needed at all.</param>
    /// <param name="forward">Computes the layer's output from the inputs, in the order given.</param>
    /// <param name="inputs">The layer's tensor inputs.</param>
    /// <returns>The layer's output, whose gradient function recomputes the layer.</returns>
    public static Tensor Run(nn.Module layer, Func<IReadOnlyList<Tensor?>, Tensor> forward, params Tensor?[] inputs)
    {
        var inputsNeedGrad = inputs.Any(t => t is not null && t.requires_grad);
        if (!inputsNeedGrad && !layer.parameters().Any(p => p.requires_grad))
        {
            // Nothing inside or upstream is trainable: a plain forward records no graph either.
            return forward(inputs);
        }
        var args = new object?[inputs.Length + 2];
        args[0] = new LayerCall(forward, inputs);
        Array.Copy(inputs, 0, args, 1, inputs.Length);
        if (!inputsNeedGrad)
        {
            // A custom function joins the graph only when an input requires grad. Under LoRA the frozen embeddings
            // feed layer 0 an input that does not, so its adapters would get no gradient; a trainable empty leaf
            // puts the node in the graph (transformers' enable_input_require_grads hooks the embeddings instead).
            var device = inputs.First(t => t is not null)!.device;
            args[^1] = torch.empty(0, device: device, requires_grad: true);
        }
        return CheckpointFunction.apply(args!);
    }

    /// <summary>What the backward needs besides the saved inputs: the forward, which inputs want gradients, the RNG state.</summary>
    private sealed class LayerCall
    {
        public LayerCall(Func<IReadOnlyList<Tensor?>, Tensor> forward, Tensor?[] inputs)
        {
            Forward = forward;
            RequiresGrad = inputs.Select(t => t is not null && t.requires_grad).ToArray();
        }

        public Func<IReadOnlyList<Tensor?>, Tensor> Forward { get; }

        public bool[] RequiresGrad { get; }

        public int Count => RequiresGrad.Length;

        /// <summary>The CPU generator's state before the forward, as bytes (the context keeps tensors only as saved variables).</summary>
        public byte[] RngState { get; set; } = [];
    }

    /// <summary>
    /// The custom autograd function. Arguments: the <see cref="LayerCall"/>, the layer's inputs, then an optional
    /// trainable empty leaf; the backward returns one gradient per argument (null where none is due).
    /// </summary>
    private sealed class CheckpointFunction : SingleTensorFunction<CheckpointFunction>
    {
        private const string CallKey = "layer_call";

        public override string Name => "CheckpointFunction";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            // TorchSharp's apply runs this under no_grad: the layer records nothing.
            var call = (LayerCall)vars[0];
            var inputs = new Tensor?[call.Count];
            for (var i = 0; i < inputs.Length; i++)
            {
                inputs[i] = vars[i + 1] as Tensor;
            }
            call.RngState = CaptureRng();
            // With materialised grads TorchSharp would build zeros from an output copy that our caller's dispose scope
            // has already freed; an undefined incoming gradient is handled in backward instead.
            ctx.set_materialize_grads(false);
            ctx.save_for_backward([.. inputs]);
            ctx.save_data(CallKey, call);
            return call.Forward(inputs);
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
        {
            var call = (LayerCall)ctx.get_data(CallKey);
            if (grad_output.IsInvalid)
            {
                // No gradient reached the layer's output: nothing flows to its inputs or parameters.
                return [.. Enumerable.Repeat<Tensor>(null!, call.Count + 2)];
            }
            using var scope = torch.NewDisposeScope();
            var saved = ctx.get_saved_variables();
            var detached = new Tensor?[call.Count];
            for (var i = 0; i < detached.Length; i++)
            {
                detached[i] = saved[i]?.detach().requires_grad_(call.RequiresGrad[i]);
            }
            Tensor output;
            using (torch.enable_grad())
            using (ReplayRng(call.RngState))
            {
                output = call.Forward(detached);
            }
            if (output.requires_grad)
            {
                // Reentrant backward: accumulates into the layer's parameters' .grad and the detached inputs' .grad.
                torch.autograd.backward(output, grad_output);
            }
            var grads = new List<Tensor?>(call.Count + 2) { null };
            for (var i = 0; i < detached.Length; i++)
            {
                // The engine copies the returned tensors after this returns; the outer scope frees our handles.
                grads.Add(call.RequiresGrad[i] ? detached[i]!.grad?.MoveToOuterDisposeScope() : null);
            }
            grads.Add(null);
            return grads!;
        }

        private static byte[] CaptureRng()
        {
            using var state = torch.get_rng_state();
            return state.data<byte>().ToArray();
        }

        private static RngRestorer ReplayRng(byte[] state)
        {
            var current = CaptureRng();
            using (var replay = torch.tensor(state, dtype: ScalarType.Byte))
            {
                torch.set_rng_state(replay);
            }
            return new RngRestorer(current);
        }

        /// <summary>Puts the generator back where the backward found it.</summary>
        private sealed class RngRestorer(byte[] state) : IDisposable
        {
            public void Dispose()
            {
                using var restore = torch.tensor(state, dtype: ScalarType.Byte);
                torch.set_rng_state(restore);
            }
        }
    }
}
