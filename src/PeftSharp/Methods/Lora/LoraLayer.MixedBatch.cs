using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

// A mixed batch in one pass, as punica's BGMV / S-LoRA: gather each row's A and B (by its adapter) into a batch of
// factors and run the two products as batched matmuls, so the number of tensor calls per layer does not grow with the
// number of adapters. Each row gets base(x) + s·B A x as its adapter alone gives it (rounded in another order: s scales
// A x rather than the output). The per-row factors are stacked on every forward, not cached: an in-place hot-swap, an
// optimizer step or a caller's copy_ into a factor is then seen with no invalidation rule to get wrong.
public sealed partial class LoraLayer
{
    protected override Tensor? ApplyRoutedAdapters(Tensor x, Tensor result, AdapterRouting routing, IReadOnlyList<string> adapters)
    {
        var dtype = Base.DType;
        if (Base.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D) || result.dtype != dtype)
        {
            return null;
        }
        var a = new Tensor[adapters.Count];
        var b = new Tensor[adapters.Count];
        var ranks = new long[adapters.Count];
        var scalings = new double[adapters.Count];
        for (var k = 0; k < adapters.Count; k++)
        {
            var name = adapters[k];
            // Plain LoRA only: a variant (DoRA) has its own forward, a live dropout draws a mask per adapter call, and a
            // lora_B bias is not in the gathered factors.
            if (_variants.ContainsKey(name) || DropsInput(name) || _configs[name].LoraBias)
            {
                return null;
            }
            a[k] = WeightOf(_loraA[name]);
            b[k] = WeightOf(_loraB[name]);
            if (a[k].dtype != dtype || b[k].dtype != dtype || !SameDevice(a[k], result) || !SameDevice(b[k], result))
            {
                return null;
            }
            ranks[k] = a[k].shape[0];
            scalings[k] = _configs[name].Scaling;
        }
        var rank = ranks.Max();
        for (var k = 0; k < adapters.Count; k++)
        {
            // Zero rows of A and zero columns of B add nothing to B·A: a smaller rank is padded up to the largest.
            if (ranks[k] < rank)
            {
                a[k] = nn.functional.pad(a[k], [0, 0, 0, rank - ranks[k]]);
                b[k] = nn.functional.pad(b[k], [0, rank - ranks[k]]);
            }
        }
        var (slots, weight) = routing.RowSlots(adapters, scalings, result.device, dtype);
        var rows = slots.Length;
        var rowA = new Tensor[rows];
        var rowB = new Tensor[rows];
        for (var i = 0; i < rows; i++)
        {
            rowA[i] = a[slots[i]];
            rowB[i] = b[slots[i]];
        }
        var input = InBaseDType(x);
        var x3 = input.dim() == 3 ? input : input.reshape(rows, -1, Base.InFeatures);
        // [rows, tokens, in] @ [rows, in, r]; a row outside the slots has weight 0, so it adds 0 below.
        var h = x3.bmm(torch.stack(rowA).transpose(1, 2));
        if (weight is not null)
        {
            // Filled, not only multiplied: 0·inf is NaN, and a base row whose input holds an inf must keep its base
            // output, as the per-group path (which never runs the adapter on it) keeps it.
            h.mul_(weight).masked_fill_(weight.eq(0), 0);
        }
        // result + h @ Bᵀ in one call, [rows, tokens, r] @ [rows, r, out]. TorchSharp 0.107 trap: the instance method is
        // batch1.baddbmm(batch2, input), and torch.baddbmm(input, batch1, batch2) passes its arguments on in that order.
        var r3 = result.dim() == 3 ? result : result.reshape(rows, -1, Base.OutFeatures);
        var y = h.baddbmm(torch.stack(rowB).transpose(1, 2), r3);
        return result.dim() == 3 ? y : y.reshape(result.shape);
    }

    private static bool SameDevice(Tensor t, Tensor u) => t.device_type == u.device_type && t.device_index == u.device_index;
}
