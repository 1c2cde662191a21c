using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Support;

/// <summary>The reference for mixed-batch serving: each row run alone, as a batch of one.</summary>
public static class RowByRow
{
    /// <summary>
    /// Every row of <paramref name="x"/> alone with its adapter of <paramref name="rows"/> active, or with adapters
    /// disabled for <see cref="AdapterRouting.BaseName"/> rows; the outputs concatenated in row order.
    /// </summary>
    public static Tensor Run(PeftModel peft, nn.Module<Tensor, Tensor> net, Tensor x, string[] rows)
    {
        var outputs = new Tensor[rows.Length];
        for (var i = 0; i < rows.Length; i++)
        {
            var row = x.narrow(0, i, 1);
            if (rows[i] == AdapterRouting.BaseName)
            {
                using (peft.DisableAdapters())
                {
                    outputs[i] = net.call(row);
                }
            }
            else
            {
                peft.SetActiveAdapters(rows[i]);
                outputs[i] = net.call(row);
            }
        }
        return torch.cat(outputs);
    }

    /// <summary>The batch routed row by row through <see cref="PeftModel.UseAdapterPerRow"/> in one forward.</summary>
    public static Tensor Routed(PeftModel peft, nn.Module<Tensor, Tensor> net, Tensor x, string[] rows)
    {
        using (peft.UseAdapterPerRow(rows))
        {
            return net.call(x);
        }
    }
}
